"""The bus's own Faust agents: audiences, channel decisions, message decisions and
the product feed. Pure logic in its own modules; ``agents`` wires it to the bus."""
