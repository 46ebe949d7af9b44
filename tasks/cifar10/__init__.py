"""The CIFAR-10 class-forgetting tasks (``cifar10-class``): data, recipes, task."""
