"""Control plane: migration plans as code (steps, actions, gates), their CLI, state, history and the guide."""
