"""What every test layer shares: the Discord emulator world, running the app, waiting, binaries."""
