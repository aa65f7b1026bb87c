// Opens each URL given in headless Chromium (Debian's, through
// playwright-core), waits for the page's window.done, and prints one JSON
// object: URL -> the page's window.events. Used by e2e/browser_test.go.
import { chromium } from "playwright-core";

const urls = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const results = {};
  await Promise.all(urls.map(async (url) => {
    const page = await browser.newPage();
    const console = [];
    page.on("console", (m) => console.push(m.text()));
    page.on("pageerror", (e) => console.push("pageerror: " + e.message));
    await page.goto(url);
    try {
      await page.waitForFunction(() => window.done === true, null, { timeout: 30000 });
    } finally {
      results[url] = { events: await page.evaluate(() => window.events), console };
    }
  }));
  process.stdout.write(JSON.stringify(results));
} finally {
  await browser.close();
}
