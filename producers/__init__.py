"""The device side: the simulated wearable fleet and replay of real recordings."""
