"""What every layer may use: argument checks and k-means (torch and the standard library only)."""
