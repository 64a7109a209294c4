"""ROS 2 robots without a ROS install: the rmw_zenoh wire format over eclipse-zenoh, messages as CDR via rosbags."""
