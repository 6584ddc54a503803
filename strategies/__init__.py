"""Trading strategies, discovered by module name."""
