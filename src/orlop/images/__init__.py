"""Images: references, registry client, content store, image store, pull/push, save/load."""
