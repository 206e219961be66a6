"""CityTwin hydraulics package."""
