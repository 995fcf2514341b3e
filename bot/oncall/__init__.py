"""On call: rotations (`schedules`), escalation policies and routes (`policies`), the timeline engine
(`escalation`), who gets paged and how (`paging`), the voice call's TwiML (`voice`), the one ticker per
deployment (`ticker`) and the service the rest of the bot talks to (`service`)."""
