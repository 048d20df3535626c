"""The deterministic mutual-aid application: state tree, enrollment, evidence, claims, jury, settlement, governance."""
