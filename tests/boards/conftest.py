
# The fake board trees are shared with the sensor tests.
