"""Image builds from Dockerfiles: Docker's classic builder."""
