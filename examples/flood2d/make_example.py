"""Make the small street DEM and sources of the `twin flood2d` example (deterministic).

A 500 m x 300 m block at 2 m cells (EPSG:32650): ground falling 0.5 % to the
east, an east-west avenue and a north-south street with carriageways 0.12 m
below the kerb, building blocks raised 4 m, and one sag point (an underpass
0.6 m deep) where the avenue passes under a railway.  Two manholes surcharge
onto the avenue, and a 2 h storm rains on everything.

    python examples/flood2d/make_example.py   # rewrites dem.tif, inflows.csv, rain.csv, gauges.csv here
"""

from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine

from gisdata.raster import Raster, write_geotiff

HERE = Path(__file__).resolve().parent
CELL, ROWS, COLS = 2.0, 150, 250
X0, Y0 = 500_000.0, 3_400_300.0          # north-west corner, m


def make_dem() -> np.ndarray:
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    x, y = (xx + 0.5) * CELL, (yy + 0.5) * CELL          # m from the north-west corner (y southwards)
    z = 20.0 - 0.005 * x + 0.002 * np.abs(y - 150.0)     # falls east, and gently towards the avenue
    avenue = np.abs(y - 150.0) <= 8.0                     # 16 m wide, carriageway 12 m
    street = np.abs(x - 240.0) <= 6.0
    carriage = (np.abs(y - 150.0) <= 6.0) | (np.abs(x - 240.0) <= 4.0)
    z = np.where(carriage, z - 0.12, z)
    z -= np.where(np.abs(y - 150.0) <= 6.0, 0.02 * np.abs(y - 150.0) / 6.0, 0.0) * -1.0  # crossfall to the gutters
    underpass = carriage & (np.abs(x - 380.0) <= 20.0) & avenue
    z = np.where(underpass, z - 0.6 * (1 - np.abs(x - 380.0) / 20.0), z)
    blocks = ~(avenue | street) & ((xx // 20) % 3 != 0) & ((yy // 15) % 3 != 0)
    z = np.where(blocks, z + 4.0, z)
    return z


def main() -> None:
    transform = Affine(CELL, 0, X0, 0, -CELL, Y0)
    write_geotiff(Raster(make_dem(), transform, "EPSG:32650"), HERE / "dem.tif")
    t = np.arange(0, 7201, 600)
    peak = np.interp(t, [0, 1800, 3600, 7200], [0.0, 1.0, 0.2, 0.0])
    rows = []
    for name, x, y, q in (("MH12", 100.0, 150.0, 0.8), ("MH17", 300.0, 152.0, 0.5)):
        rows += [{"name": name, "x": X0 + x, "y": Y0 - y, "time_s": int(ti), "q_m3s": round(q * p, 4)}
                 for ti, p in zip(t, peak)]
    pd.DataFrame(rows).to_csv(HERE / "inflows.csv", index=False)
    pd.DataFrame({"time_s": [0, 1800, 3600, 5400, 7200], "mm_h": [10.0, 40.0, 15.0, 5.0, 0.0]}).to_csv(
        HERE / "rain.csv", index=False)
    pd.DataFrame({"name": ["avenue_west", "underpass", "street_north"],
                  "x": [X0 + 101.0, X0 + 381.0, X0 + 241.0],
                  "y": [Y0 - 151.0, Y0 - 151.0, Y0 - 61.0]}).to_csv(HERE / "gauges.csv", index=False)


if __name__ == "__main__":
    main()
