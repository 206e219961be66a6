"""3D scenes, maps and charts. Functions take a city and results and return figures; they never start a run."""
