"""Visitor management: sites, visitors, visits and passes at the gate, on the messaging pipeline."""
