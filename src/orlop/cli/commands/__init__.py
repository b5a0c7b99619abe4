"""The commands of `orlop`, one module per family."""
