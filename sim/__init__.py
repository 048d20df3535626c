"""Virtual-time simulator: event loop, seeded network model, faults, checkers, scenarios, traces."""
