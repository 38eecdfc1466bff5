"""Running bshmd as a service: lifecycle, systemd notification, signals, logging, HTTP."""
