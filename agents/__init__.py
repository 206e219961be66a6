"""CityTwin agents package."""
