"""The learned cost model: program features and the models that rank programs by them."""
