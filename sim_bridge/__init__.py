"""The core of sern: simulator backends, the multi-robot env API, twin synchronisation
and the site link. It never imports rclpy, so it runs and tests without a ROS graph.
"""
