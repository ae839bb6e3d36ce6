fn main() {
    println!("hello!");
}
