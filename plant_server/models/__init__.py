"""plant_server/models."""
