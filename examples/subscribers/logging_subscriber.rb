# frozen_string_literal: true

require "tasker_events"

# The logging subscriber of the domain events design. It receives fast and broadcast events
# (durable ones only go to PGMQ) on the drain thread, and writes to the gem's logger at info:
# give TaskerEvents.start a logger at INFO (the default one logs WARN and above) to see them.
#
#   TaskerEvents::SubscriberRegistry.instance
#     .register(DomainEvents::Subscribers::LoggingSubscriber).start_all!
module DomainEvents
  module Subscribers
    # Logs every in-process event with the identifiers that tie it to its task and step.
    class LoggingSubscriber < TaskerCore::DomainEvents::BaseSubscriber
      subscribes_to "*"

      def handle(event)
        metadata = event[:metadata] || {}

        logger.info "[LoggingSubscriber] Event: #{event[:event_name]}"
        logger.info "  Task: #{metadata[:task_uuid]}"
        logger.info "  Step: #{metadata[:step_name]}"
        logger.info "  Namespace: #{metadata[:namespace]}"
        logger.info "  Correlation: #{metadata[:correlation_id]}"
      end
    end
  end
end
