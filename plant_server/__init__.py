"""plant_server."""
