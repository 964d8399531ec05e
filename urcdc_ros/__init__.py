"""The ROS 2 side of urcdc: depth node, image/cloud conversions and bag tools."""
