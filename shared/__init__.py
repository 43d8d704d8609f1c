"""Common ground for every service and the gateway: contracts, bus, storage, web conventions."""
