import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/js/**/*.test.ts"],
    // The view tests need a DOM; the rest run fine in it too and share one setup.
    environment: "happy-dom",
    restoreMocks: true,
  },
});
