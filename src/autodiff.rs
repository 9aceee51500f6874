//! Reverse-mode autodiff inside the graph: backward rules append ordinary ops, so a training step is one Plan.
