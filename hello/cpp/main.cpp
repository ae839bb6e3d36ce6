// The tutorial's hello, in C++: written with iostream, so that the binary
// links libstdc++ (and through it libm and libgcc_s) as well as libc.
#include <iostream>

int main() {
    std::cout << "hello!" << std::endl;
    return 0;
}
