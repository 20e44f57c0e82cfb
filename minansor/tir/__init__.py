"""TensorIR the search reads and writes: block and loop analysis, layout rewrite of constants, the VNNI intrinsic."""
