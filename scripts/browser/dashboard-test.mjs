// Loads the Tally dashboard in headless Chromium, clicks "+ Increment", waits until every
// node's displayed value changed, and saves a screenshot.
//
//   node dashboard-test.mjs DASHBOARD_URL SCREENSHOT_PATH [EXPECTED_NODES]
//
// Only loopback traffic is allowed: every other request is aborted, name resolution of any
// other host fails, and Chromium's background services are off.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const [url, screenshotArg, expectedArg] = process.argv.slice(2);
if (!url || !screenshotArg) {
  console.error("usage: node dashboard-test.mjs DASHBOARD_URL SCREENSHOT_PATH [EXPECTED_NODES]");
  process.exit(2);
}
const screenshot = resolve(screenshotArg);
const expectedNodes = Number(expectedArg || "3");
const TIMEOUT = 20_000;

function isLoopback(u) {
  try {
    const { protocol, hostname } = new URL(u);
    if (protocol === "data:" || protocol === "about:") return true;
    return hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
  } catch {
    return false;
  }
}
if (!isLoopback(url)) {
  console.error(`refusing a non-loopback URL: ${url}`);
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "tally-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-default-apps",
      "--disable-extensions",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
    ],
  });
  await context.route("**/*", (route) =>
    isLoopback(route.request().url()) ? route.continue() : route.abort("blockedbyclient"));

  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });

  await page.goto(url, { waitUntil: "load", timeout: TIMEOUT });
  // Every node is shown with a value, and the nodes agree.
  await page.waitForFunction(
    (n) => {
      const cards = document.querySelectorAll("[data-node-url]");
      return document.body.dataset.mode === "gateway" &&
        cards.length === n &&
        Array.from(cards).every((c) => c.querySelector("[data-role=value]").dataset.value !== "") &&
        document.getElementById("convergence").dataset.converged === "true";
    },
    expectedNodes,
    { timeout: TIMEOUT },
  );
  const valuesOf = () => page.$$eval("[data-node-url]", (cards) =>
    Object.fromEntries(cards.map((c) => [c.dataset.nodeUrl, c.querySelector("[data-role=value]").dataset.value])));
  const before = await valuesOf();
  console.log("before:", JSON.stringify(before));

  await page.click("#inc");
  const result = page.locator("#action-result[data-ok]");
  await result.waitFor({ timeout: TIMEOUT });
  const ok = await result.getAttribute("data-ok");
  const message = await result.textContent();
  console.log("answer:", message);
  if (ok !== "true") throw new Error(`increment failed: ${message}`);

  // Every node's displayed value changes (the write reached one node; gossip carries it on).
  await page.waitForFunction(
    (old) => {
      const cards = Array.from(document.querySelectorAll("[data-node-url]"));
      return cards.length === Object.keys(old).length && cards.every((c) => {
        const v = c.querySelector("[data-role=value]").dataset.value;
        return v !== "" && v !== old[c.dataset.nodeUrl];
      });
    },
    before,
    { timeout: TIMEOUT },
  );
  const after = await valuesOf();
  console.log("after: ", JSON.stringify(after));
  for (const [node, v] of Object.entries(after)) {
    if (Number(v) !== Number(before[node]) + 1) throw new Error(`${node}: ${before[node]} -> ${v}, expected +1`);
  }
  // Settle for the picture: converged again, and two polls for the frame rates.
  await page.waitForFunction(
    () => document.getElementById("convergence").dataset.converged === "true",
    null,
    { timeout: TIMEOUT },
  );
  await page.waitForTimeout(1200);
  if (problems.length) throw new Error(problems.join("\n"));

  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);
  console.log("browser test passed: every node's value changed after one click");
} catch (e) {
  console.error(`browser test FAILED: ${e.message}`);
  try {
    const page = context && context.pages()[0];
    if (page) {
      const failed = screenshot.replace(/\.png$/, "") + "-failed.png";
      mkdirSync(dirname(failed), { recursive: true });
      await page.screenshot({ path: failed, fullPage: true });
      console.error(`screenshot of the failure: ${failed}`);
    }
  } catch { /* nothing more to show */ }
  process.exitCode = 1;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
