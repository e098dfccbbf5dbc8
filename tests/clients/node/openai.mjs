// openai-node against the router: `node openai.mjs <scenario>` prints one JSON line for pytest to check.
// ROUTER_URL, ROUTER_KEY and ROUTER_MODEL come from the environment (tests/clients/conftest.py).
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ROUTER_URL, apiKey: process.env.ROUTER_KEY, maxRetries: 0, timeout: 20000 });
const model = process.env.ROUTER_MODEL;
const hello = [{ role: "user", content: "Hello there" }];
const emulator = { completion_tokens: 5 };
const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get current weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const scenarios = {
  async create() {
    const completion = await client.chat.completions.create({ model, messages: hello, emulator });
    return { content: completion.choices[0].message.content, usage: completion.usage, request_id: completion._request_id ?? null };
  },

  // The loop from OpenAI's docs, without stream_options.
  async stream() {
    const { data: stream, request_id } = await client.chat.completions
      .create({ model, messages: hello, stream: true, emulator })
      .withResponse();
    let text = "";
    let last = null;
    for await (const chunk of stream) {
      text += chunk.choices[0].delta.content ?? "";
      last = chunk;
    }
    return { text, finish_reason: last.choices[0].finish_reason, usage: last.usage ?? null, request_id: request_id ?? null };
  },

  async stream_usage() {
    const stream = await client.chat.completions.create({
      model,
      messages: hello,
      stream: true,
      stream_options: { include_usage: true },
      emulator,
    });
    let text = "";
    const chunks = [];
    for await (const chunk of stream) {
      if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
      chunks.push(chunk);
    }
    return { text, choices_per_chunk: chunks.map((c) => c.choices.length), usage: chunks.at(-1).usage ?? null };
  },

  async tools() {
    const question = { role: "user", content: "What's the weather in Moscow?" };
    const first = await client.chat.completions.create({ model, messages: [question], tools: [weatherTool] });
    const message = first.choices[0].message;
    const call = message.tool_calls[0];
    const second = await client.chat.completions.create({
      model,
      messages: [question, message, { role: "tool", tool_call_id: call.id, content: "Sunny, +5" }],
      tools: [weatherTool],
    });
    return {
      finish_reason: first.choices[0].finish_reason,
      name: call.function.name,
      arguments: JSON.parse(call.function.arguments),
      answer: second.choices[0].message.content,
    };
  },

  async parse() {
    const schema = {
      type: "object",
      properties: { city: { type: "string" }, temperature_c: { type: "integer" }, sunny: { type: "boolean" } },
      required: ["city", "temperature_c", "sunny"],
      additionalProperties: false,
    };
    const completion = await client.chat.completions.parse({
      model,
      messages: [{ role: "user", content: "Weather in Moscow" }],
      response_format: { type: "json_schema", json_schema: { name: "weather", strict: true, schema } },
    });
    return { parsed: completion.choices[0].message.parsed };
  },

  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    return { ids };
  },
};

const result = await scenarios[process.argv[2]]();
console.log(JSON.stringify(result));
