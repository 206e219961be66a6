"""CityTwin scenarios package."""
