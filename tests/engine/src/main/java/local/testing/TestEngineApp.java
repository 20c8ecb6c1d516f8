package local.testing;

import jakarta.servlet.Filter;
import org.camunda.bpm.engine.rest.security.auth.ProcessEngineAuthenticationFilter;
import org.camunda.bpm.engine.rest.security.auth.impl.HttpBasicAuthenticationProvider;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.boot.autoconfigure.web.servlet.JerseyApplicationPath;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;

/**
 * Camunda 7 engine with its REST API under /engine-rest, for integration tests.
 *
 * <p>Nothing is deployed at startup; tests deploy their BPMN through POST /deployment/create.
 */
@SpringBootApplication
public class TestEngineApp {

  public static void main(String[] args) {
    SpringApplication.run(TestEngineApp.class, args);
  }

  /**
   * HTTP Basic authentication for the REST API, checked against the engine's identity service.
   * Registered only when harness.basic-auth=true (env HARNESS_BASIC_AUTH=true). The filter leaves
   * GET /engine open, which keeps it usable as a readiness probe.
   */
  @Bean
  @ConditionalOnProperty(name = "harness.basic-auth", havingValue = "true")
  FilterRegistrationBean<Filter> engineRestBasicAuth(JerseyApplicationPath restPath) {
    FilterRegistrationBean<Filter> registration =
        new FilterRegistrationBean<>(new ProcessEngineAuthenticationFilter());
    registration.setName("harness-basic-auth");
    registration.addUrlPatterns(restPath.getUrlMapping());
    registration.addInitParameter(
        ProcessEngineAuthenticationFilter.AUTHENTICATION_PROVIDER_PARAM,
        HttpBasicAuthenticationProvider.class.getName());
    registration.setOrder(1);
    return registration;
  }
}
