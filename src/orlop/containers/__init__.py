"""The container service: containers made from images and request configs, run by one
orlop-shim each, their state kept on disk; no HTTP here (api/ serves it)."""
