// The Vercel AI SDK (`ai` with `@ai-sdk/openai-compatible`) against the router: `node ai-sdk.mjs <scenario>`
// prints one JSON line for pytest to check. ROUTER_URL, ROUTER_KEY and ROUTER_MODEL come from the environment.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { generateText, streamText } from "ai";

const settings = { name: "mlrouter", baseURL: process.env.ROUTER_URL, apiKey: process.env.ROUTER_KEY };
const request = {
  prompt: "Hello there",
  maxRetries: 0,
  providerOptions: { mlrouter: { emulator: { completion_tokens: 5 } } },
};

async function stream(provider) {
  const errors = [];
  const result = streamText({
    model: provider(process.env.ROUTER_MODEL),
    ...request,
    onError: ({ error }) => errors.push(String(error?.stack ?? error)),
  });
  let text = "";
  for await (const part of result.textStream) text += part;
  if (errors.length) throw new Error(errors.join("\n"));
  const usage = await result.usage;
  return {
    text,
    finish_reason: await result.finishReason,
    input_tokens: usage.inputTokens ?? null,
    output_tokens: usage.outputTokens ?? null,
  };
}

const scenarios = {
  async generate() {
    const provider = createOpenAICompatible(settings);
    const result = await generateText({ model: provider(process.env.ROUTER_MODEL), ...request });
    return {
      text: result.text,
      finish_reason: result.finishReason,
      input_tokens: result.usage.inputTokens ?? null,
      output_tokens: result.usage.outputTokens ?? null,
      cost: result.response.body?.usage?.cost ?? null,
    };
  },
  stream: () => stream(createOpenAICompatible(settings)),
  stream_usage: () => stream(createOpenAICompatible({ ...settings, includeUsage: true })),
};

const result = await scenarios[process.argv[2]]();
console.log(JSON.stringify(result));
