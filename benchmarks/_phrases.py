"""The caller's phrases the voice benchmarks speak (espeak-ng), the same in each so their
figures compare."""

PHRASES = [
    "What is the weather in Paris",
    "Please book a table for two",
    "Turn off the kitchen lights",
    "How far is the nearest station",
    "Set a timer for ten minutes",
    "Play some quiet music",
    "What time is it in Tokyo",
    "Send a message to my sister",
    "Remind me to call the doctor",
    "How do I get to the airport",
    "Tell me a short story",
    "Add milk to my shopping list",
    "What is the capital of Spain",
    "Open the front door",
    "Call a taxi for six o'clock",
    "How many days until Friday",
    "Translate good morning into French",
    "What is on my calendar today",
    "Turn the volume down please",
    "Thank you very much",
]
