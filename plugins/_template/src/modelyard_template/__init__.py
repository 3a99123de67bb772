"""modelyard-template: <what it adds>."""
