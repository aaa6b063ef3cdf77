"""Typed Faust models of every journeybus topic's value, generated from schemas/avro.

Do not edit: ``python -m streams.faust.generate`` rewrites this file from the schemas
(``make models``), and a test fails when it is out of date. ``TOP_LEVEL`` maps each
schema's full Avro name to its model; ``streams.faust.topics`` gives every catalogue
topic its model as value type.

Timestamps are epoch milliseconds (``int``), as the runtime's codec decodes them.
"""

from __future__ import annotations

import faust


class AttributionCredit(faust.Record, include_metadata=False):
    """The credit one touch of a conversion path receives under one attribution model.

    Attributes:
        credit_id: Deterministic id: hash of conversion id, model and touchpoint id.
        conversion_id: Conversion id.
        journey_id: Journey id.
        customer_key: Stitched customer key; the partition key.
        touchpoint_id: Touchpoint credited.
        channel: Channel of the touch.
        model: first_touch, last_touch, last_non_direct, linear, linear_unique, position_based,
            w_shaped, time_decay, markov, shapley or shapley_simplified.
        credit: Share of the conversion, 0..1; the credits of one conversion and model sum to 1.
        value_credit: Share of the conversion value; sums to the conversion value.
        conversion_value: Value of the conversion.
        currency: ISO 4217 currency code.
        conversion_time: When the conversion happened, UTC. (epoch milliseconds)
        model_version: Version of the model parameters (rule-based: the rule set; markov: the
            transition snapshot).
        computed_at: When the credit was computed, UTC. (epoch milliseconds)
    """

    credit_id: str
    conversion_id: str
    journey_id: str
    customer_key: str
    touchpoint_id: str
    channel: str
    model: str
    credit: float
    value_credit: float
    conversion_value: float
    conversion_time: int
    model_version: str
    computed_at: int
    currency: str | None = None


class AttributeUsed(faust.Record, include_metadata=False):
    """A profile attribute a decision used, with how sure the profile is of it.

    Attributes:
        name: Attribute name, as in cust.profiles.v1.
        value: Its value when the decision was taken.
        confidence: observed, declared or inferred.
        probability: For inferred attributes, the probability that the value is right.
    """

    name: str
    confidence: str
    value: str | None = None
    probability: float | None = None


class AudienceChange(faust.Record, include_metadata=False):
    """A customer entering or leaving an audience declared in the audiences file, when a profile
    update changes the answer of its predicate.

    Attributes:
        change_id: Deterministic id: hash of audience, definition, customer key and profile
            version; a replayed profile produces the same id.
        audience: Audience name, as declared.
        definition_version: Hash of the audience's definition: a changed definition is a new
            version.
        customer_key: Stitched customer key; the partition key.
        change: entered or exited. One of entered, exited.
        profile_version: Version of the profile that caused the change.
        reason: The conditions of the predicate and the values that decided them.
        attributes_used: Attributes the predicate read, with their confidence.
        triggered_at: When the profile update that caused the change was published (its Kafka
            timestamp), UTC. (epoch milliseconds)
        decided_at: When the agent published the change, UTC. (epoch milliseconds)
    """

    change_id: str
    audience: str
    definition_version: str
    customer_key: str
    change: str
    profile_version: int
    reason: str
    attributes_used: list[AttributeUsed]
    triggered_at: int
    decided_at: int


class Product(faust.Record, include_metadata=False):
    """The current state of one product of the catalogue (latest record per product id wins).

    Attributes:
        product_id: Product id; the record key.
        sku: Stock keeping unit.
        name: Product name.
        category: Top-level category, e.g. Shoes.
        subcategory: Subcategory, e.g. Running.
        brand: Brand.
        price: List price in the currency below.
        currency: ISO 4217 currency code.
        active: False once the product is withdrawn.
        in_stock: Whether the product can be delivered now; null: not known (treated as in
            stock).
        updated_at: When the product record last changed, UTC. (epoch milliseconds)
    """

    product_id: str
    name: str
    category: str
    price: float
    currency: str
    updated_at: int
    sku: str | None = None
    subcategory: str | None = None
    brand: str | None = None
    active: bool = True
    in_stock: bool | None = None


class ChannelDecision(faust.Record, include_metadata=False):
    """Whether to keep, reduce or suppress messaging a customer on one channel, published only when
    the decision changes.

    Attributes:
        decision_id: Deterministic id: hash of customer key, channel, decision and profile
            version.
        customer_key: Stitched customer key; the partition key.
        channel: email, push, sms or social.
        decision: keep, reduce or suppress. One of keep, reduce, suppress.
        previous_decision: The decision this one replaces (null for the first). One of keep,
            reduce, suppress.
        preferred_channel: The channel the customer responds to best, if any.
        sent: Messages sent on the channel (for social: 0, the brand does not send to one
            customer).
        responses: Responses on the channel (opens, clicks, visits; for social: the customer's
            own interactions).
        response_rate: Posterior mean response rate (null for social).
        reason: Why, in words: the evidence behind the decision.
        profile_version: Version of the profile the decision was taken on.
        decided_at: When the agent published the decision, UTC. (epoch milliseconds)
    """

    decision_id: str
    customer_key: str
    channel: str
    decision: str
    sent: int
    responses: int
    reason: str
    profile_version: int
    decided_at: int
    previous_decision: str | None = None
    preferred_channel: str | None = None
    response_rate: float | None = None


class Page(faust.Record, include_metadata=False):
    """Page the event happened on.

    Attributes:
        url: Full page URL, including query string (UTM parameters).
        path: URL path.
        referrer: Referring URL (document.referrer).
        title: Page title.
        search: URL query string.
    """

    url: str | None = None
    path: str | None = None
    referrer: str | None = None
    title: str | None = None
    search: str | None = None


class Campaign(faust.Record, include_metadata=False):
    """Campaign (UTM) parameters of the landing URL or deep link.

    Attributes:
        source: utm_source: where the traffic came from (google, newsletter).
        medium: utm_medium: the marketing medium (cpc, email, social).
        name: utm_campaign: the campaign name.
        term: utm_term: the paid search keyword.
        content: utm_content: the ad or link variant.
        click_id: Paid ad click id (gclid, dclid, wbraid, gbraid; msclkid) when present: auto-
            tagged paid traffic. fbclid is not one: it is added to organic links too.
    """

    source: str | None = None
    medium: str | None = None
    name: str | None = None
    term: str | None = None
    content: str | None = None
    click_id: str | None = None


class Context(faust.Record, include_metadata=False):
    """Client context sent by the SDK.

    Attributes:
        ip: Client IP address as seen by the collector or sent by the SDK.
        user_agent: HTTP User-Agent of the client.
        locale: Client locale, e.g. en-GB.
        timezone: IANA time zone of the client.
        library_name: Name of the tracking library (analytics-python, snowplow-tracker, ...).
        library_version: Version of the tracking library.
    """

    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    timezone: str | None = None
    library_name: str | None = None
    library_version: str | None = None


class ClickstreamEvent(faust.Record, include_metadata=False):
    """A web clickstream event as accepted by the HTTP collector (Segment, RudderStack or Jitsu
    tracking APIs, or the Snowplow tracker protocol).

    Attributes:
        event_id: Idempotency key of the event: Segment messageId or Snowplow eid. A retried
            event carries the same id; it is the source of the deterministic touchpoint id.
        protocol: Tracking protocol the event arrived in: segment (Segment HTTP API,
            analytics.js), snowplow (tracker protocol), rudderstack (RudderStack SDKs and
            beacon/pixel/webhook routes) or jitsu (Jitsu event API). rudderstack and jitsu added
            in revision 3. One of segment, snowplow, rudderstack, jitsu.
        source: Logical source the write key maps to (e.g. web).
        event_type: Segment call type: track, page, identify, screen, group or alias (Snowplow:
            pv -> page, se/ue -> track).
        event_name: Name of a track event, e.g. 'Product Viewed', 'Order Completed' (Segment
            e-commerce spec names).
        anonymous_id: Anonymous device/browser id set by the SDK (Segment anonymousId, Snowplow
            domain_userid).
        user_id: The retailer's customer id once known (Segment userId, Snowplow uid).
        previous_id: Previous id of an alias call.
        group_id: Account/group id of a group call.
        event_time: When the event happened on the client (Segment timestamp, Snowplow dtm),
            UTC. (epoch milliseconds)
        sent_at: When the SDK sent the batch (Segment sentAt, Snowplow stm), UTC; used to
            correct client clock skew. (epoch milliseconds)
        received_at: When the collector accepted the event, UTC. (epoch milliseconds)
        page: Page context of the event (page calls and web track calls).
        campaign: Campaign parameters from context.campaign or the page URL.
        context: Client context.
        properties_json: Event properties as a JSON object (Segment properties; Snowplow self-
            describing event data).
        traits_json: User traits as a JSON object (identify calls); may hold contact data.
        consent_json: Consent categories granted by the user (Segment
            context.consent.categoryPreferences) as a JSON object; null when the SDK sent none.
            Added in revision 2.
        rudder_id: RudderStack's rudderId, as the SDK sent it; null from other protocols. Added
            in revision 3.
        channel: The channel the SDK declared (RudderStack's channel: web, mobile, server,
            sources); null when it sent none. Added in revision 3.
    """

    event_id: str
    protocol: str
    source: str
    event_type: str
    event_time: int
    received_at: int
    context: Context
    event_name: str | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    sent_at: int | None = None
    page: Page | None = None
    campaign: Campaign | None = None
    properties_json: str | None = None
    traits_json: str | None = None
    consent_json: str | None = None
    rudder_id: str | None = None
    channel: str | None = None


class Difference(faust.Record, include_metadata=False):
    """How this customer differs from the typical customer in one dimension.

    Attributes:
        dimension: acquisition_channel, first_category, order_value or discount_use.
        customer_value: The customer's value in that dimension.
        typical_value: The typical customer's value.
        lift: Ratio of the expected 365-day value of customers like this one to the typical
            customer's.
    """

    dimension: str
    customer_value: str
    typical_value: str
    lift: float | None = None


class CustomerScore(faust.Record, include_metadata=False):
    """Predicted future value of a customer scored at their first purchase, and how they differ
    from the typical customer and their cohort.

    Attributes:
        score_id: Deterministic id: hash of customer key and first order id.
        customer_key: Stitched customer key; the partition key.
        first_order_id: Order id of the first purchase.
        first_order_time: When the first purchase happened, UTC. (epoch milliseconds)
        first_order_value: Value of the first purchase.
        currency: ISO 4217 currency code.
        acquisition_channel: First-touch channel of the customer's first conversion path.
        first_category: Top category of the first purchase.
        discount_used: True when the first order used a discount or coupon.
        cohort: Acquisition cohort: year-month of the first purchase (YYYY-MM).
        order_value_percentile: Percentile of the first order value among all first orders,
            0..100.
        expected_purchases_90d: BG/NBD expected repeat purchases in the next 90 days.
        expected_purchases_365d: BG/NBD expected repeat purchases in the next 365 days.
        expected_value_90d: Expected repeat revenue in 90 days (BG/NBD x Gamma-Gamma).
        expected_value_365d: Expected repeat revenue in 365 days.
        p_alive: Probability the customer is still active.
        typical_expected_value_365d: The same prediction for the typical (median) new customer.
        cohort_expected_value_365d: Mean prediction of the customer's acquisition cohort so far.
        differences: Differences from the typical customer.
        model_version: Fit the score came from (fit time and parameters hash).
        scored_at: When the score was computed, UTC. (epoch milliseconds)
    """

    score_id: str
    customer_key: str
    first_order_id: str
    first_order_time: int
    first_order_value: float
    acquisition_channel: str
    discount_used: bool
    cohort: str
    order_value_percentile: float
    expected_purchases_90d: float
    expected_purchases_365d: float
    expected_value_90d: float
    expected_value_365d: float
    p_alive: float
    typical_expected_value_365d: float
    cohort_expected_value_365d: float
    differences: list[Difference]
    model_version: str
    scored_at: int
    currency: str | None = None
    first_category: str | None = None


class DeadLetter(faust.Record, include_metadata=False):
    """A record that could not be processed, with the reason and the original bytes, so that it can
    be inspected and replayed.

    Attributes:
        dead_letter_id: Deterministic id: hash of stage and source topic/partition/offset (or
            event id at the collector); a replay produces the same id.
        source_topic: Topic (or collector endpoint) the record came from.
        source_partition: Partition of the original record.
        source_offset: Offset of the original record.
        source_key: Key of the original record.
        original: The original bytes, unchanged.
        original_format: Format of original: avro (Confluent framed), json, csv or http.
        error_type: Machine-readable reason: decode_error, schema_violation, missing_id,
            impossible_timestamp, unknown_event_type, invalid_value, too_large, unknown_schema.
        error_message: Human-readable explanation.
        stage: Where it failed: collector, source, normalise, enrich, identity, journeys,
            attribution, scoring, profiles or sink.
        event_id: Event id of the original, when it could be read.
        failed_at: When it failed, UTC. (epoch milliseconds)
        headers: Headers of the original record.
    """

    dead_letter_id: str
    source_topic: str
    original: bytes
    original_format: str
    error_type: str
    error_message: str
    stage: str
    failed_at: int
    headers: dict[str, str]
    source_partition: int | None = None
    source_offset: int | None = None
    source_key: bytes | None = None
    event_id: str | None = None


class ErasedIdentifier(faust.Record, include_metadata=False):
    """One identifier of the customer's identity group when the request was made.

    Attributes:
        kind: anonymous_id, device_id, user_id, email_hash, phone_hash, loyalty_id or
            social_handle.
        value: The identifier (emails and phone numbers only ever as hashes).
    """

    kind: str
    value: str


class ErasureRequest(faust.Record, include_metadata=False):
    """A request to forget a customer (right to be forgotten): every stage drops the customer's
    state, the sink deletes their rows from every table and logs the erasure; with opt_out,
    their later events are suppressed too.

    Attributes:
        request_id: Unique id of the request; the sink logs it and applies each request once.
        customer_key: The stitched customer key named in the request.
        identifiers: Every identifier linked to the customer key when the request was made, so
            consumers without the identity graph can find the customer's rows.
        opt_out: True: the customer also opted out, so events of these identifiers received
            later are suppressed (counted, never stored). False: later activity starts a new
            customer history.
        reason: Free text for the audit trail, e.g. a ticket number; never personal data.
        requested_at: When the request was made. Data received before it is forgotten. (epoch
            milliseconds)
    """

    request_id: str
    customer_key: str
    identifiers: list[ErasedIdentifier]
    requested_at: int
    opt_out: bool = False
    reason: str | None = None


class OrderLine(faust.Record, include_metadata=False):
    """One line of an order.

    Attributes:
        line_id: Order line id.
        product_id: Product id (joins cust.catalog.products.v1).
        sku: Stock keeping unit.
        quantity: Units ordered (or returned).
        unit_price: Price per unit in the order currency, before discount.
        discount: Discount on this line in the order currency.
    """

    line_id: str
    product_id: str
    quantity: int
    unit_price: float
    sku: str | None = None
    discount: float = 0.0


class FulfillmentEvent(faust.Record, include_metadata=False):
    """An order-management event captured from the fulfilment database.

    Attributes:
        event_id: Deterministic id derived from the source row and event type, so a re-sent row
            is the same event.
        event_type: order_placed, order_paid, order_shipped, order_delivered, order_delayed,
            order_returned, order_refunded, ticket_opened or ticket_closed.
        order_id: Order id (null for tickets not tied to an order).
        customer_id: The retailer's customer id.
        email: Customer email on the order.
        sales_channel: Where the order was placed: web, app, store, phone or marketplace.
        store_id: Store id for store purchases and click-and-collect.
        lines: Order lines (order events; empty for tickets).
        order_total: Order total in the order currency, after discounts.
        discount_total: Total discount of the order.
        currency: ISO 4217 currency code.
        coupon_code: Coupon used on the order.
        shipment_id: Shipment id (shipped, delivered, delayed).
        carrier: Carrier of the shipment.
        return_id: Return id (returned, refunded).
        refund_amount: Refunded amount (refunded).
        ticket_id: Support ticket id (ticket events).
        reason: Reason given: delay reason, return reason or ticket topic.
        occurred_at: When the event happened in the order system, UTC. (epoch milliseconds)
        captured_at: When the source captured the change, UTC. (epoch milliseconds)
        source_position: Position of the change in the source (outbox sequence number or LSN),
            for audit.
    """

    event_id: str
    event_type: str
    customer_id: str
    sales_channel: str
    lines: list[OrderLine]
    occurred_at: int
    captured_at: int
    source_position: str
    order_id: str | None = None
    email: str | None = None
    store_id: str | None = None
    order_total: float | None = None
    discount_total: float | None = None
    currency: str | None = None
    coupon_code: str | None = None
    shipment_id: str | None = None
    carrier: str | None = None
    return_id: str | None = None
    refund_amount: float | None = None
    ticket_id: str | None = None
    reason: str | None = None


class Identifier(faust.Record, include_metadata=False):
    """One identifier of a person.

    Attributes:
        kind: What kind of identifier this is. One of anonymous_id, device_id, user_id,
            email_hash, phone_hash, loyalty_id, social_handle.
        value: The identifier; emails and phones only ever as SHA-256 hex of the normalised
            value.
    """

    kind: str
    value: str


class IdentityEvent(faust.Record, include_metadata=False):
    """Evidence that identifiers belong to one person: identify, alias, login, loyalty or social
    link, email on an order.

    Attributes:
        event_id: Idempotency key of the evidence (the source event id).
        source_system: Who saw the evidence: web, mobile, fulfillment, crm, social or messaging.
        event_type: identify, alias, login, loyalty_link, order_email or social_link.
        customer_id: The retailer's customer id when the evidence names one.
        identifiers: Identifiers that belong together.
        traits_json: Declared traits as a JSON object (name, email, birthday, ...).
        occurred_at: When the evidence was created, UTC. (epoch milliseconds)
        received_at: When journeybus received it, UTC. (epoch milliseconds)
    """

    event_id: str
    source_system: str
    event_type: str
    identifiers: list[Identifier]
    occurred_at: int
    received_at: int
    customer_id: str | None = None
    traits_json: str | None = None


class JourneyTouch(faust.Record, include_metadata=False):
    """One touch of the path, oldest first.

    Attributes:
        touchpoint_id: Touchpoint id.
        channel: Channel of the touch.
        event_type: Normalised event type.
        event_time: When it happened, UTC. (epoch milliseconds)
        hours_to_end: Hours from this touch to window_end (time to conversion).
        session_id: Session of the touch.
        source_system: web, mobile, social, messaging or fulfillment.
    """

    touchpoint_id: str
    channel: str
    event_type: str
    event_time: int
    hours_to_end: float
    source_system: str
    session_id: str | None = None


class Journey(faust.Record, include_metadata=False):
    """A customer's touchpoints in the lookback window before a conversion, or a window that ended
    without one (a null path).

    Attributes:
        journey_id: Deterministic id: the conversion id for converting journeys, a hash of
            customer key and window for null paths.
        customer_key: Stitched customer key; the partition key.
        converted: True for a conversion path, false for a null path.
        conversion_id: Conversion id (order id).
        conversion_touchpoint_id: Touchpoint id of the conversion event.
        conversion_time: When the conversion happened, UTC. (epoch milliseconds)
        conversion_value: Revenue of the conversion (0 for null paths).
        currency: ISO 4217 currency code of conversion_value.
        conversion_category: Product category of the conversion's order, as its touchpoint
            carried it; null for null paths and unknown categories (revision 2).
        conversion_discount: Whether the conversion's order used a discount or a coupon code;
            null for null paths (revision 2).
        window_start: Start of the lookback window, UTC. (epoch milliseconds)
        window_end: End of the window: the conversion time, or the expiry of a null path, UTC.
            (epoch milliseconds)
        lookback_days: Length of the lookback window in days.
        touchpoints: Touches in the window, oldest first, excluding the conversion event itself.
        path: Channels of the touches joined by ' > ' (the ChannelAttribution path format).
        touch_count: Number of touches.
        emitted_at: When the journey was published, UTC. (epoch milliseconds)
    """

    journey_id: str
    customer_key: str
    converted: bool
    window_start: int
    window_end: int
    lookback_days: int
    touchpoints: list[JourneyTouch]
    path: str
    touch_count: int
    emitted_at: int
    conversion_id: str | None = None
    conversion_touchpoint_id: str | None = None
    conversion_time: int | None = None
    conversion_value: float = 0.0
    currency: str | None = None
    conversion_category: str | None = None
    conversion_discount: bool | None = None


class MessageDecision(faust.Record, include_metadata=False):
    """The answer to a message request: which variant of the audience's curated set to send, on
    which channel, and the attributes it personalises with.

    Attributes:
        decision_id: The request's id; one decision per request.
        request_id: The request answered.
        customer_key: Stitched customer key; the partition key.
        audience: Audience of the message set.
        outcome: send or hold. One of send, hold.
        variant: The chosen variant's id (null when held).
        channel: Channel to send on (null when held).
        content: The variant's text with the customer's attributes filled in.
        message_id: Id the messaging platform must send with; responses to it teach the agent.
        attributes_used: Attributes the content uses, each with its confidence (all observed,
            declared, or inferred above the floor).
        variants_in_use: Distinct variants the audience's set has in use (never above the cap).
        sampled_rate: The Thompson draw of the chosen variant's response rate.
        reason: Why this variant, or why held.
        decided_at: When the agent published the decision, UTC. (epoch milliseconds)
    """

    decision_id: str
    request_id: str
    customer_key: str
    audience: str
    outcome: str
    message_id: str
    attributes_used: list[AttributeUsed]
    variants_in_use: int
    reason: str
    decided_at: int
    variant: str | None = None
    channel: str | None = None
    content: str | None = None
    sampled_rate: float | None = None


class MessageRequest(faust.Record, include_metadata=False):
    """A request to send one customer a message of an audience's curated set; the message decision
    agent answers it.

    Attributes:
        request_id: Id chosen by the requester; the answer's decision_id is this id.
        customer_key: Stitched customer key; the partition key.
        audience: The audience whose message set to choose from.
        channel: Channel to send on; null lets the agent choose among the channels not
            suppressed.
        campaign_id: The requester's campaign.
        requested_at: When the request was made, UTC. (epoch milliseconds)
    """

    request_id: str
    customer_key: str
    audience: str
    requested_at: int
    channel: str | None = None
    campaign_id: str | None = None


class MessagingEvent(faust.Record, include_metadata=False):
    """A delivery or engagement event of an email, push or SMS message.

    Attributes:
        event_id: Idempotency key: the provider's event id, or a hash of message id + event
            type.
        channel: email, push or sms.
        event_type: sent, delivered, opened, clicked, bounced, unsubscribed or complained.
        message_id: Id of the message (one per recipient and send).
        campaign_id: Id of the campaign or journey step that sent the message.
        campaign_name: Name of the campaign.
        user_id: The retailer's customer id of the recipient.
        email: Recipient email address (email channel).
        phone: Recipient phone number (sms channel).
        device_token: Push token of the recipient device (push channel).
        link_url: URL clicked (clicked events), including UTM parameters.
        provider: Sending provider, e.g. sendgrid, braze, twilio.
        bounce_reason: Why the message bounced (bounced events).
        occurred_at: When the event happened at the provider, UTC. (epoch milliseconds)
        received_at: When journeybus received it, UTC. (epoch milliseconds)
    """

    event_id: str
    channel: str
    event_type: str
    message_id: str
    occurred_at: int
    received_at: int
    campaign_id: str | None = None
    campaign_name: str | None = None
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None
    device_token: str | None = None
    link_url: str | None = None
    provider: str | None = None
    bounce_reason: str | None = None


class App(faust.Record, include_metadata=False):
    """The app that sent the event.

    Attributes:
        name: App name.
        version: App version.
        build: App build number.
        namespace: Bundle id / package name.
    """

    name: str | None = None
    version: str | None = None
    build: str | None = None
    namespace: str | None = None


class Device(faust.Record, include_metadata=False):
    """The device the app runs on.

    Attributes:
        manufacturer: Device manufacturer.
        model: Device model.
        type: ios, android, ...
        os_name: Operating system name.
        os_version: Operating system version.
        advertising_id: IDFA/AAID when the user allowed tracking.
    """

    manufacturer: str | None = None
    model: str | None = None
    type: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    advertising_id: str | None = None


class MobileEvent(faust.Record, include_metadata=False):
    """An event from the mobile app SDK (Segment mobile spec), as accepted by the HTTP collector.

    Attributes:
        event_id: Idempotency key: Segment messageId or Snowplow eid.
        protocol: Tracking protocol the event arrived in: segment (Segment HTTP API,
            analytics.js), snowplow (tracker protocol), rudderstack (RudderStack SDKs and
            beacon/pixel/webhook routes) or jitsu (Jitsu event API). rudderstack and jitsu added
            in revision 2. One of segment, snowplow, rudderstack, jitsu.
        source: Logical source the write key maps to (e.g. mobile).
        event_type: Segment call type: track, screen, identify, group or alias.
        event_name: Track event name, e.g. 'Application Opened', 'Product Scanned', 'Order
            Completed'.
        anonymous_id: Anonymous device/browser id set by the SDK (Segment anonymousId, Snowplow
            domain_userid).
        user_id: The retailer's customer id once known (Segment userId, Snowplow uid).
        device_id: Stable device id (context.device.id).
        previous_id: Previous id of an alias call.
        event_time: When the event happened on the device, UTC. (epoch milliseconds)
        sent_at: When the SDK sent the batch, UTC. (epoch milliseconds)
        received_at: When the collector accepted the event, UTC. (epoch milliseconds)
        screen_name: Screen name of screen calls.
        app: App context.
        device: Device context.
        campaign: Campaign parameters of the deep link or install referrer.
        context: Client context.
        properties_json: Event properties as a JSON object.
        traits_json: User traits as a JSON object; may hold contact data.
        rudder_id: RudderStack's rudderId, as the SDK sent it; null from other protocols. Added
            in revision 2.
        channel: The channel the SDK declared (RudderStack's channel: web, mobile, server,
            sources); null when it sent none. Added in revision 2.
    """

    event_id: str
    protocol: str
    source: str
    event_type: str
    event_time: int
    received_at: int
    context: Context
    event_name: str | None = None
    anonymous_id: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    previous_id: str | None = None
    sent_at: int | None = None
    screen_name: str | None = None
    app: App | None = None
    device: Device | None = None
    campaign: Campaign | None = None
    properties_json: str | None = None
    traits_json: str | None = None
    rudder_id: str | None = None
    channel: str | None = None


class ProfileAttribute(faust.Record, include_metadata=False):
    """One attribute with where it came from and how sure we are.

    Attributes:
        name: Attribute name: email_hash, location, preferred_category, lifetime_value,
            predicted_value, preferred_channel, ...
        value: Attribute value as text (numbers in decimal).
        confidence: How the value is known. One of observed, declared, inferred.
        probability: Probability the value is right (inferred attributes).
        source_system: System of the event that set the value.
        source_event_id: Event that set the value (provenance).
        updated_at: When the value was set, UTC. (epoch milliseconds)
    """

    name: str
    confidence: str
    source_system: str
    source_event_id: str
    updated_at: int
    value: str | None = None
    probability: float | None = None


class ChannelResponse(faust.Record, include_metadata=False):
    """How the customer responds to one messaging channel.

    Attributes:
        channel: email, push or sms.
        sent: Messages sent.
        responses: Messages with a response (open, click, visit or purchase within the window).
        response_rate: Posterior mean response rate.
        ci_low: Lower bound of the 90% credible interval of the response rate.
        ci_high: Upper bound of the 90% credible interval.
        last_response_at: Last response, UTC. (epoch milliseconds)
        recommendation: keep, reduce or suppress. One of keep, reduce, suppress.
    """

    channel: str
    sent: int
    responses: int
    response_rate: float
    ci_low: float
    ci_high: float
    recommendation: str
    last_response_at: int | None = None


class CustomerProfile(faust.Record, include_metadata=False):
    """The latest known profile of a customer: attributes with provenance and confidence, and
    channel responsiveness. Keyed by customer; latest wins.

    Attributes:
        customer_key: Stitched customer key; the record key.
        version: Monotonic version of this profile; a consumer keeps the highest.
        attributes: Attributes with provenance and confidence.
        channel_responsiveness: Responsiveness per messaging channel.
        updated_at: When the profile last changed, UTC. (epoch milliseconds)
    """

    customer_key: str
    version: int
    attributes: list[ProfileAttribute]
    channel_responsiveness: list[ChannelResponse]
    updated_at: int


class FeedItem(faust.Record, include_metadata=False):
    """One recommended product.

    Attributes:
        rank: Rank, from 1.
        product_id: Product id.
        category: Product category.
        score: Association strength with what the customer browsed and bought.
        reason: Why: the products of the customer it completes.
    """

    rank: int
    product_id: str
    score: float
    reason: str
    category: str | None = None


class ProductFeed(faust.Record, include_metadata=False):
    """A customer's segment-of-one product feed: ranked products that complete what they browse and
    buy, after one of their touches.

    Attributes:
        feed_id: Deterministic id: hash of customer key and the touchpoint that triggered it.
        customer_key: Stitched customer key; the partition key.
        trigger_touchpoint_id: The touchpoint after which the feed was computed.
        items: Ranked products, best first; never one the customer bought or one out of stock.
        categories: Distinct categories in the list.
        generated_at: When the agent published the feed, UTC. (epoch milliseconds)
    """

    feed_id: str
    customer_key: str
    trigger_touchpoint_id: str
    items: list[FeedItem]
    categories: int
    generated_at: int


class SocialEvent(faust.Record, include_metadata=False):
    """A social listening event: a mention, comment, share, like or click-through on a post.

    Attributes:
        event_id: Idempotency key: the platform's interaction id, or a hash of platform + post +
            handle + type + time.
        platform: Social platform: instagram, tiktok, facebook, x, youtube, pinterest, ...
        event_type: mention, comment, share, like or click_through.
        handle: The social handle of the person who interacted.
        user_id: The retailer's customer id when the handle is linked to an account.
        post_id: Id of the post interacted with (the retailer's or a third party's).
        post_url: URL of the post.
        text: Text of the mention or comment; may contain personal data.
        lang: Language of the text (ISO 639-1) when known.
        link_url: Target URL of a click-through, including UTM parameters.
        campaign: Campaign parameters of the post link.
        followers: Follower count of the handle at the time (reach).
        occurred_at: When the interaction happened on the platform, UTC. (epoch milliseconds)
        received_at: When journeybus received it, UTC. (epoch milliseconds)
    """

    event_id: str
    platform: str
    event_type: str
    handle: str
    occurred_at: int
    received_at: int
    user_id: str | None = None
    post_id: str | None = None
    post_url: str | None = None
    text: str | None = None
    lang: str | None = None
    link_url: str | None = None
    campaign: Campaign | None = None
    followers: int | None = None


class DeviceInfo(faust.Record, include_metadata=False):
    """Parsed client device.

    Attributes:
        type: desktop, mobile, tablet, bot or other.
        os: Operating system family.
        browser: Browser family.
        is_bot: True when the user agent is a known bot.
    """

    type: str | None = None
    os: str | None = None
    browser: str | None = None
    is_bot: bool = False


class Touchpoint(faust.Record, include_metadata=False):
    """One interaction of a customer with the retailer on any channel, normalised, enriched and
    keyed by the stitched customer key.

    Attributes:
        touchpoint_id: Deterministic id: hash of the source topic and source event id; a
            replayed event yields the same id.
        source_event_id: event_id of the raw event this touchpoint came from.
        source_topic: Raw topic of the source event.
        source_system: web, mobile, social, messaging or fulfillment.
        customer_key: Stitched customer key: the customer id once known, else the first
            anonymous id; the partition key.
        anonymous_id: Anonymous id of the raw event.
        user_id: Customer id of the raw event.
        device_id: Device id of the raw event.
        event_type: Normalised event type: page_view, screen_view, product_view, add_to_cart,
            checkout, purchase, app_open, product_scan, social_<type>, message_<type>,
            order_<type>, ticket_<type>.
        event_name: Original event name, if any.
        channel: Channel for attribution and reporting: GA4 default channel group (Direct,
            Organic Search, Paid Search, Email, ...) for traffic with web context, else the non-
            web channel (Mobile App, Social Post, Email, Push, SMS, Store, Fulfilment).
        event_time: When it happened, UTC. (epoch milliseconds)
        received_time: When journeybus first received the raw event, UTC. (epoch milliseconds)
        session_id: Session of this touchpoint (30 minutes of inactivity end a session).
        is_conversion: True for a purchase that counts as a conversion.
        conversion_id: Conversion id (order id) when is_conversion.
        order_id: Order id of commerce events.
        revenue: Revenue of the event in its currency (order total for purchases).
        currency: ISO 4217 currency code of revenue.
        discount: Discount given on the order.
        coupon_code: Coupon used.
        product_id: Product of product-level events (first line of an order).
        product_category: Category from the catalogue join.
        product_brand: Brand from the catalogue join.
        quantity: Units of the event.
        campaign: Campaign parameters.
        referrer: Referring URL of web traffic.
        page_url: Page URL of web events.
        device: Parsed user agent.
        sentiment: Sentiment of social text, -1 (negative) to 1 (positive).
        message_id: Message id of messaging events.
        processed_at: When the stream processor produced this record, UTC. (epoch milliseconds)
        attributes: Further source attributes that have no column of their own.
    """

    touchpoint_id: str
    source_event_id: str
    source_topic: str
    source_system: str
    customer_key: str
    event_type: str
    channel: str
    event_time: int
    received_time: int
    processed_at: int
    attributes: dict[str, str]
    anonymous_id: str | None = None
    user_id: str | None = None
    device_id: str | None = None
    event_name: str | None = None
    session_id: str | None = None
    is_conversion: bool = False
    conversion_id: str | None = None
    order_id: str | None = None
    revenue: float | None = None
    currency: str | None = None
    discount: float | None = None
    coupon_code: str | None = None
    product_id: str | None = None
    product_category: str | None = None
    product_brand: str | None = None
    quantity: int | None = None
    campaign: Campaign | None = None
    referrer: str | None = None
    page_url: str | None = None
    device: DeviceInfo | None = None
    sentiment: float | None = None
    message_id: str | None = None


class SourcePartitionProgress(faust.Record, include_metadata=False):
    """How far one raw source partition has been processed by the worker that owns it.

    Attributes:
        topic: Raw source topic.
        partition: Partition of the raw source topic.
        progress: Event time up to which the partition's records were processed and their
            outputs acknowledged by the broker: its latest such event time less the allowed
            lateness (null: none yet). (epoch milliseconds)
        caught_up: Nothing is left to read in the partition: it does not hold the watermark
            back.
    """

    topic: str
    partition: int
    caught_up: bool
    progress: int | None = None


class StitchedRecord(faust.Record, include_metadata=False):
    """Internal: touchpoints re-keyed by the stitched customer key, and identity merge commands, in
    one ordered stream per customer key. Input of the journeys stage.

    Attributes:
        kind: touchpoint: a touchpoint for customer_key; merge: customer_key now belongs to
            merge_into (send its journey state there); expect: origin merges into customer_key
            (hold its touchpoints until the transfer); transfer: journey state moved into
            customer_key from origin; watermark: the normalise worker named by origin has
            processed every source partition it owns up to the event time in watermark (added in
            revision 2); since revision 3 it lists the progress of each source partition the
            worker owns in source_partitions.
        customer_key: The customer key this record is for; the partition key.
        touchpoint: The touchpoint (kind touchpoint), session not yet assigned.
        merge_into: The customer key customer_key merges into (kind merge).
        origin: The customer key the state came from (kind transfer).
        state_json: The moved journey state as JSON (kind transfer).
        watermark: Event-time watermark of a watermark record: every source event before it has
            been published by its origin. Added in revision 2. Since revision 3 the journeys
            stage gates on source_partitions instead; this stays the worker's minimum for
            readers of revision 2. (epoch milliseconds)
        source_partitions: Watermark records: the progress of every raw source partition the
            origin worker owns. The journeys stage takes the minimum over all source partitions
            (by whichever worker reported last), so a partition that changed hands or whose
            owner has not reported yet holds conversions back. Added in revision 3.
        emitted_at: When the record was produced, UTC. (epoch milliseconds)
    """

    kind: str
    customer_key: str
    emitted_at: int
    touchpoint: Touchpoint | None = None
    merge_into: str | None = None
    origin: str | None = None
    state_json: str | None = None
    watermark: int | None = None
    source_partitions: list[SourcePartitionProgress] | None = None


# the model of each schema, by its full Avro name
TOP_LEVEL = {
    "AudienceChange": AudienceChange,
    "ChannelDecision": ChannelDecision,
    "MessageDecision": MessageDecision,
    "MessageRequest": MessageRequest,
    "ProductFeed": ProductFeed,
    "com.journeybus.cust.attribution.AttributionCredit": AttributionCredit,
    "com.journeybus.cust.catalog.Product": Product,
    "com.journeybus.cust.clickstream.ClickstreamEvent": ClickstreamEvent,
    "com.journeybus.cust.deadletter.DeadLetter": DeadLetter,
    "com.journeybus.cust.fulfillment.FulfillmentEvent": FulfillmentEvent,
    "com.journeybus.cust.identity.IdentityEvent": IdentityEvent,
    "com.journeybus.cust.journeys.Journey": Journey,
    "com.journeybus.cust.messaging.MessagingEvent": MessagingEvent,
    "com.journeybus.cust.mobile.MobileEvent": MobileEvent,
    "com.journeybus.cust.profiles.CustomerProfile": CustomerProfile,
    "com.journeybus.cust.scores.CustomerScore": CustomerScore,
    "com.journeybus.cust.social.SocialEvent": SocialEvent,
    "com.journeybus.cust.stitched.StitchedRecord": StitchedRecord,
    "com.journeybus.cust.touchpoints.Touchpoint": Touchpoint,
    "journeybus.privacy.ErasureRequest": ErasureRequest,
}
