"""What looks at a trained network: predictions on images, pictures, the self-contained page."""
