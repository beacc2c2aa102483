"""Point-in-time feature builders: one module per signal family, declared in one registry."""
