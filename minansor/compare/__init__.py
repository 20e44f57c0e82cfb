"""Side by side with stock MetaSchedule (TVM's TensorIR port of Ansor), per task and per network."""
