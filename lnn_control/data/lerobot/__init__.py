"""LeRobot v3 datasets (Parquet + MP4 + meta/) to and from the project's episode format; pyarrow + PyAV, no LeRobot runtime."""
