//! GPU kernels against the CPU reference, every family, f32 and f16, on awkward sizes.

mod common;

mod attention;
mod elementwise;
mod embedding;
mod loss;
mod matmul;
mod norm;
mod optim;
mod position;
mod qmatmul;
mod select;
mod softmax;
