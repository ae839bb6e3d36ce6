// The tutorial's hello in Java: it uses java.base alone, so jdeps names one module.
public class Hello {
    public static void main(String[] args) {
        System.out.println("hello!");
    }
}
