"""Small helpers shared by the entry points: Hub loading, named-group instantiation, config
resolvers, the CSV logger."""
