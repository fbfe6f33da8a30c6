// Drives the browser test: serves the page from one origin, starts the greeter (with CORS for
// that origin) on another, opens the page in headless Chromium through playwright-core, and
// prints the page's result lines. Exits non-zero unless every check passed.
//
//   node driver.mjs CHROMIUM SERVER_BINARY SITE_DIR
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [chromiumPath, serverBinary, siteDir] = process.argv.slice(2);
const EXPECTED = 9;

const site = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const file = path === "/" ? "index.html" : path.slice(1);
  try {
    const body = await readFile(join(siteDir, file));
    const type = file.endsWith(".js") ? "text/javascript" : "text/html";
    res.writeHead(200, { "content-type": type });
    res.end(body);
  } catch {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((resolve) => site.listen(0, "127.0.0.1", resolve));
const pageOrigin = `http://127.0.0.1:${site.address().port}`;

const server = spawn(serverBinary, [pageOrigin], { stdio: ["pipe", "pipe", "inherit"] });
const api = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: server.stdout });
  lines.on("line", (line) => {
    const found = /^listening on (http:\/\/\S+)/.exec(line);
    if (found) resolve(found[1]);
  });
  server.on("exit", (code) => reject(new Error(`server exited (${code})`)));
});
console.log(`page origin ${pageOrigin}, API origin ${api}`);

let failed = true;
const browser = await chromium.launch({
  executablePath: chromiumPath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  page.on("console", (message) => console.log(`console: ${message.text()}`));
  page.on("pageerror", (error) => console.log(`page error: ${error}`));
  await page.goto(`${pageOrigin}/index.html?api=${encodeURIComponent(api)}`);
  await page.waitForFunction(() => Array.isArray(window.__results), null, { timeout: 30000 });
  const results = await page.evaluate(() => window.__results);
  for (const line of results) console.log(line);
  const passed = results.filter((line) => line.startsWith("ok ")).length;
  console.log(`browser (Chromium ${browser.version()}): ${passed} passed, ${results.length - passed} failed`);
  failed = passed !== EXPECTED || results.length !== EXPECTED;
} finally {
  await browser.close();
  server.stdin.end();
  site.close();
}
process.exit(failed ? 1 : 0);
