// Kernels are compiled here once the CUDA backend lands.
fn main() {}
