"""Thin rclpy nodes over the core (the only package that imports rclpy)."""
