// The tracker SDKs as shops install them from npm, exposed to the test page.
import { AnalyticsBrowser } from "@segment/analytics-next";
import { RudderAnalytics } from "@rudderstack/analytics-js/bundled";
import * as snowplow from "@snowplow/browser-tracker";
import { jitsuAnalytics } from "@jitsu/js";

window.SDKS = { AnalyticsBrowser, RudderAnalytics, snowplow, jitsuAnalytics };
