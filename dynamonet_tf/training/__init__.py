"""Training DynamoNet: stages, optimisation, checkpoints, logs."""
