"""Support for the end-to-end test in real VS Code (code-server + Chromium + Playwright)."""
