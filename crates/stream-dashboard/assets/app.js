<!-- placeholder: the dashboard page is being written -->
