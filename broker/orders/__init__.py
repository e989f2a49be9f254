"""The order builder: resolve instruments, price legs, and build SDK orders."""
